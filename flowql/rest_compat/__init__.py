"""REST compatibility mounts: each documented route becomes a GraphQL operation run in process."""
