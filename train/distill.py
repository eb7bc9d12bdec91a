"""Knowledge distillation from a teacher (usually the unpruned model) into a pruned or rewritten student."""
from typing import Callable, Dict

import torch
import torch.nn.functional as F

from edgematte.edge.errors import InputError

Outputs = Dict[str, torch.Tensor]
DistillFn = Callable[[Outputs, Outputs], torch.Tensor]

DISTILL_LOSSES = {}  # type: Dict[str, DistillFn]


def register_distill(*tasks: str) -> Callable[[DistillFn], DistillFn]:
    """Register a distillation loss for model tasks."""
    def wrap(fn: DistillFn) -> DistillFn:
        for task in tasks:
            DISTILL_LOSSES[task] = fn
        return fn
    return wrap


@register_distill("saliency", "alpha")
def alpha_distill(student: Outputs, teacher: Outputs) -> torch.Tensor:
    """L1 between the student's and the teacher's deployed maps, plus MSE between MODNet semantic maps when both
    have them (the low-resolution branch is where pruning bites first)."""
    loss = F.l1_loss(student["out"].float(), teacher["out"].float())
    if "semantic" in student and "semantic" in teacher:
        loss = loss + F.mse_loss(student["semantic"].float(), teacher["semantic"].float())
    return loss


@register_distill("trimap")
def trimap_distill(student: Outputs, teacher: Outputs) -> torch.Tensor:
    """KL divergence of the student's trimap class distribution from the teacher's."""
    return F.kl_div(F.log_softmax(student["logits"].float(), dim=1), F.softmax(teacher["logits"].float(), dim=1),
                    reduction="batchmean") / float(student["logits"].shape[-1] * student["logits"].shape[-2])


class Distiller:
    """A frozen teacher and the task's distillation loss, weighted: `loss(student_out, images)`."""

    def __init__(self, teacher: torch.nn.Module, task: str, weight: float) -> None:
        if task not in DISTILL_LOSSES:
            raise InputError("no distillation loss for task {!r}".format(task))
        self.teacher = teacher.eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.fn = DISTILL_LOSSES[task]
        self.weight = float(weight)

    def loss(self, student_out: Outputs, images: torch.Tensor) -> torch.Tensor:
        """Weighted distillation loss of the student's outputs against the teacher's on the same images."""
        with torch.no_grad():
            teacher_out = self.teacher(images)
        return self.weight * self.fn(student_out, teacher_out)


def load_teacher(path: str, student: torch.nn.Module, device: torch.device, weight: float) -> Distiller:
    """A Distiller around the kit checkpoint `path`; its task and normalisation must match the student's."""
    from .checkpoint import load_checkpoint

    teacher, _ = load_checkpoint(path)
    if teacher.task != student.task:
        raise InputError("{}: teacher task {!r} differs from the student's {!r}".format(path, teacher.task,
                                                                                      student.task))
    same_norm = ([float(v) for v in teacher.config.mean] == [float(v) for v in student.config.mean]
                 and [float(v) for v in teacher.config.std] == [float(v) for v in student.config.std])
    if not same_norm:
        raise InputError("{}: teacher normalisation (mean {}, std {}) differs from the student's".format(
            path, teacher.config.mean, teacher.config.std))
    return Distiller(teacher.to(device), student.task, weight)
