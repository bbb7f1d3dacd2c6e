"""The folder: inotify, paths reached without following symlinks, fingerprints, proofs of
content, conflict copies, and versions an app may still hold open."""
