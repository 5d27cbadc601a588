"""Payment stores implementing `domain.ports.PaymentRepository`: memory, SQLite, PostgreSQL."""
