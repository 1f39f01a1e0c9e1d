"""A task module that cannot be imported: every worker that imports it dies at start-up."""

raise RuntimeError("this module is broken on purpose (crash-loop test)")
