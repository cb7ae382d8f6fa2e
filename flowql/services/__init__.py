"""Business rules, one module per domain. Resolvers, REST shapers and the engine call these."""
