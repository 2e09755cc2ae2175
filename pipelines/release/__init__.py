"""The release bundle: what leaves the clinic, with small cells suppressed and audited."""
