"""Coordination between replicas that share a ledger: leases for background work."""
