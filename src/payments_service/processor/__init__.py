"""Payment processor adapters implementing `domain.ports.PaymentProcessor`."""
