"""Storage adapters implementing `domain.ports.PaymentRepository`."""
