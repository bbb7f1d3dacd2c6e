"""The folder: inotify, paths reached without following symlinks, fingerprints, proofs of
content, and versions an app may still hold open."""
