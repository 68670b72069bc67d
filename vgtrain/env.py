"""What the training stack can use on this machine (no import fails: missing parts are reported)."""

from __future__ import annotations

import importlib
import platform


def describe() -> dict[str, str]:
    """Versions and availability of torch, CUDA, torchvision and faiss, as display strings."""
    out = {"python": platform.python_version()}
    try:
        torch = importlib.import_module("torch")
    except ImportError:
        out["torch"] = "not installed (pip install -c constraints-cpu.txt -e '.[train]')"
        return out
    out["torch"] = torch.__version__
    cuda = torch.cuda.is_available()
    out["cuda"] = f"{torch.cuda.device_count()} device(s): {torch.cuda.get_device_name(0)}" if cuda else "none"
    try:
        faiss = importlib.import_module("faiss")
        gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
        out["faiss"] = f"{faiss.__version__} ({gpus} GPU(s))"
    except ImportError:
        out["faiss"] = "not installed (kNN falls back to torch matmul+topk)"
    return out
