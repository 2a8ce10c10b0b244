"""Real servers the tests run against: Kamailio (registrar, presence, TLS) and friends."""
