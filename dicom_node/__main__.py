"""``python -m dicom_node`` = the ``dicom-node`` command."""

from dicom_node.cli import app

app(prog_name="dicom-node")
