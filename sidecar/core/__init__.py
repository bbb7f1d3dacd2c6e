"""The sync core: what is known and decided per path (the facts, the decision, the state, the
per-path work pools, the saved record, the key mapping). No I/O of its own but the state file."""
