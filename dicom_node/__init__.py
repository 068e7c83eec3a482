"""dicom-node: the DICOM edge (receive, spool, triage, dispatch, outputs) and the command line."""

__version__ = "0.1.0"
