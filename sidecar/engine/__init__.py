"""Putting the parts together and running them: the `Syncer` facade, the engine, one pass per
path, the start-up restore, health."""
