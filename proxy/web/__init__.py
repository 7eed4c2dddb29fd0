"""HTTP plumbing shared by every endpoint: route policy, the one error-rendering middleware, parsing."""
