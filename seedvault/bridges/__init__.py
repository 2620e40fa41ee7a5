"""Bridges to the ecosystem: Hugging Face caches in and out, OpenSSF model-signing (OMS) both ways.

Each bridge keeps seedvault's rule: bytes are checked as they are copied, and only the
checked copy is published or handed out.
"""

from seedvault.bridges.hf import HfExport, HfImport, export_hf, find_snapshot, hf_revision, import_hf
from seedvault.bridges.oms import OmsExport, OmsVerdict, export_oms, import_oms, verify_oms

__all__ = [
    "HfExport", "HfImport", "OmsExport", "OmsVerdict", "export_hf", "export_oms", "find_snapshot",
    "hf_revision", "import_hf", "import_oms", "verify_oms",
]  # fmt: skip
