"""What the engine does, over the store, the chains and the fee policy: each module one job, each
service unaware of Temporal (activities in ``workflows`` adapt them). A failure that retrying cannot fix
is a :class:`recovery.errors.PermanentError`."""
