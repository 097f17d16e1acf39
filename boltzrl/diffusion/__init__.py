"""Diffusion machinery shared by the agents and by toy Boltzmann sampling: schedules, samplers, score targets and
the pre-tanh Boltzmann energy of a critic."""

from boltzrl.diffusion.energy import (
    ACTION_CLIP,
    boltzmann_energy,
    log_tanh_jacobian,
    pre_tanh,
    score_matching_batch,
    score_target,
)
from boltzrl.diffusion.samplers import best_of_n, ddpm_sample, probability_flow_ode, ve_euler_maruyama
from boltzrl.diffusion.schedules import (
    VESchedule,
    VPSchedule,
    cosine_schedule,
    linear_schedule,
    make_vp_schedule,
    vp_schedule_from_betas,
    vp_sde_schedule,
)
from boltzrl.diffusion.targets import (
    dsm_loss,
    idem_score,
    idem_score_from_noise,
    rssm_loss,
    rssm_reverse_draws,
    truncated_standard_normal,
    RSSM_NORMALIZATIONS,
    rssm_weights,
    ve_score_loss,
    vp_forward,
)

__all__ = [
    "ACTION_CLIP",
    "VESchedule",
    "VPSchedule",
    "best_of_n",
    "boltzmann_energy",
    "cosine_schedule",
    "ddpm_sample",
    "dsm_loss",
    "idem_score",
    "idem_score_from_noise",
    "linear_schedule",
    "log_tanh_jacobian",
    "make_vp_schedule",
    "pre_tanh",
    "probability_flow_ode",
    "rssm_loss",
    "rssm_reverse_draws",
    "truncated_standard_normal",
    "RSSM_NORMALIZATIONS",
    "rssm_weights",
    "score_matching_batch",
    "score_target",
    "ve_euler_maruyama",
    "ve_score_loss",
    "vp_forward",
    "vp_schedule_from_betas",
    "vp_sde_schedule",
]
