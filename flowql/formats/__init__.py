"""Pure translations of public formats, shared by services and the REST compatibility mounts."""
