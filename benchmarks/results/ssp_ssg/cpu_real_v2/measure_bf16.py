"""fp32 vs bf16 (and channels_last) train step of the ssp_ssg cpu-scale networks, 1 thread, batch 32, 109x89."""
import sys, time, torch
torch.set_num_threads(1)
from common.gpu import measure_training_throughput
from ssp_ssg.config import ArchitectureConfig, OptimConfig
from ssp_ssg.losses import attribute_loss, deep_supervision_loss
from ssp_ssg.models import SegmentationNet, build_attribute_model
from ssp_ssg.throughput import FixedLandmarks
arch = ArchitectureConfig(width_multiplier=0.25); H, W = 109, 89
for name in sys.argv[1:]:
    def mk():
        torch.manual_seed(0)
        if name == "parser":
            return SegmentationNet(arch)
        m = build_attribute_model(name, arch, SegmentationNet(arch))
        return FixedLandmarks(m, (H, W)) if getattr(m, "uses_landmarks", False) else m
    def batch(n):
        x = torch.rand(n, 3, H, W)
        if name == "parser":
            return x, torch.randint(0, 7, (n, H, W))
        return x, (torch.rand(n, 40) > 0.5).float()
    loss = (lambda o, t: deep_supervision_loss(o, t)[0]) if name == "parser" else attribute_loss
    res = {}
    for bf16 in (False, True):
        for cl in (False, True):
            r = measure_training_throughput(mk(), batch, loss, batch_size=32, steps=2, warmup_steps=1,
                                            device="cpu", bf16=bf16, channels_last=cl,
                                            optimizer_factory=lambda p: torch.optim.Adagrad([q for q in p if q.requires_grad], lr=0.005))
            res[(bf16, cl)] = r.images_per_second
    print(name, {f"{'bf16' if k[0] else 'fp32'}{'-cl' if k[1] else ''}": round(v, 2) for k, v in res.items()}, flush=True)
