"""`python -m payments_service` runs the server, like the `payments-server` console script."""

from payments_service.main import main

if __name__ == "__main__":  # pragma: no cover - exercised by the subprocess end-to-end test
    main()
