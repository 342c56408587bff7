"""Plans, credits and Stripe state live here (see the billing issue)."""
