"""Seconds per PlaNet gradient update in PyTorch, the reference for `bench update`.

The issues compare our update with "the PyTorch reimplementation of PlaNet" (Kaixhin/PlaNet).
That code is not a dependency of this project, so this file re-types its model and its
training step as plainly as it is written there, to time both frameworks on the same
machine in the same hour:

  encoder      conv 3->32->64->128->256, kernel 4, stride 2, ReLU, flatten to 1024
  transition   Linear(z + a -> h), GRUCell(h, h), prior and posterior heads through a
               hidden layer of 200, std = softplus + 0.1; a Python loop over the T-1 steps
  decoder      Linear(h + z -> 1024) -> deconv 128 k5, 64 k5, 32 k6, 3 k6, stride 2
  reward       Linear(h + z -> 200), Linear(200 -> 200), Linear(200 -> 1), ReLU
  loss         summed-pixel MSE + reward MSE + max(free nats, KL) , averaged over B x (T-1)
  step         zero_grad, backward, clip_grad_norm_(1000), Adam(1e-3, eps 1e-4)

as in its `main.py` (chunks of L frames give L-1 transitions, as there). Differences from
that code, none of which changes the arithmetic: the transition model runs eagerly rather
than as a TorchScript module, and batches are random tensors rather than replay samples.

With `--models DIR` it times Kaixhin/PlaNet's own models instead (its `models.py`, imported
from a checkout such as the one `experiments/kaixhin/setup.sh` makes: TorchScript modules,
nothing of that code copied here) in its `main.py` training step as written there.

  python -m venv /tmp/tv && /tmp/tv/bin/pip install torch==2.13.0 numpy
  /tmp/tv/bin/python experiments/reference/torch_update.py --batch 16 50 --json FILE
  /tmp/tv/bin/python experiments/reference/torch_update.py --models /work/kx/code --json FILE
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.distributions import Normal
from torch.distributions.kl import kl_divergence
from torch.nn import functional as F

BELIEF, STATE, HIDDEN, EMBED, ACTION = 200, 30, 200, 1024, 6


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 4, stride=2)
        self.conv2 = nn.Conv2d(32, 64, 4, stride=2)
        self.conv3 = nn.Conv2d(64, 128, 4, stride=2)
        self.conv4 = nn.Conv2d(128, 256, 4, stride=2)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.relu(self.conv3(x))
        return F.relu(self.conv4(x)).view(-1, 1024)


class ObservationModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(BELIEF + STATE, EMBED)
        self.conv1 = nn.ConvTranspose2d(EMBED, 128, 5, stride=2)
        self.conv2 = nn.ConvTranspose2d(128, 64, 5, stride=2)
        self.conv3 = nn.ConvTranspose2d(64, 32, 6, stride=2)
        self.conv4 = nn.ConvTranspose2d(32, 3, 6, stride=2)

    def forward(self, belief, state):
        x = self.fc1(torch.cat([belief, state], dim=1)).view(-1, EMBED, 1, 1)
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.relu(self.conv3(x))
        return self.conv4(x)


class RewardModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(BELIEF + STATE, HIDDEN)
        self.fc2 = nn.Linear(HIDDEN, HIDDEN)
        self.fc3 = nn.Linear(HIDDEN, 1)

    def forward(self, belief, state):
        x = F.relu(self.fc1(torch.cat([belief, state], dim=1)))
        return self.fc3(F.relu(self.fc2(x))).squeeze(dim=1)


class TransitionModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc_embed_state_action = nn.Linear(STATE + ACTION, BELIEF)
        self.rnn = nn.GRUCell(BELIEF, BELIEF)
        self.fc_embed_belief_prior = nn.Linear(BELIEF, HIDDEN)
        self.fc_state_prior = nn.Linear(HIDDEN, 2 * STATE)
        self.fc_embed_belief_posterior = nn.Linear(BELIEF + EMBED, HIDDEN)
        self.fc_state_posterior = nn.Linear(HIDDEN, 2 * STATE)

    def forward(self, state, actions, belief, embeds):
        beliefs, prior_m, prior_s, post_z, post_m, post_s = [], [], [], [], [], []
        for t in range(actions.size(0)):
            hidden = F.relu(self.fc_embed_state_action(torch.cat([state, actions[t]], dim=1)))
            belief = self.rnn(hidden, belief)
            hidden = F.relu(self.fc_embed_belief_prior(belief))
            mean, std = torch.chunk(self.fc_state_prior(hidden), 2, dim=1)
            prior_m.append(mean)
            prior_s.append(F.softplus(std) + 0.1)
            hidden = F.relu(self.fc_embed_belief_posterior(torch.cat([belief, embeds[t]], dim=1)))
            mean, std = torch.chunk(self.fc_state_posterior(hidden), 2, dim=1)
            std = F.softplus(std) + 0.1
            state = mean + std * torch.randn_like(mean)
            beliefs.append(belief)
            post_z.append(state)
            post_m.append(mean)
            post_s.append(std)
        return [torch.stack(x) for x in (beliefs, prior_m, prior_s, post_z, post_m, post_s)]


def bottle(f, *xs):
    """Apply f to [T, B, ...] tensors as [T * B, ...] (Kaixhin's `bottle`)."""
    t, b = xs[0].shape[:2]
    y = f(*(x.reshape(t * b, *x.shape[2:]) for x in xs))
    return y.view(t, b, *y.shape[1:])


def make_step(batch: int, length: int):
    torch.manual_seed(0)
    enc, trans, obs_model, rew_model = Encoder(), TransitionModel(), ObservationModel(), RewardModel()
    params = [p for m in (enc, trans, obs_model, rew_model) for p in m.parameters()]
    opt = torch.optim.Adam(params, lr=1e-3, eps=1e-4)
    obs = torch.rand(length, batch, 3, 64, 64) - 0.5
    actions = torch.rand(length, batch, ACTION) * 2 - 1
    rewards = torch.randn(length, batch)
    free_nats = torch.full((1,), 3.0)

    def step():
        zeros_b, zeros_s = torch.zeros(batch, BELIEF), torch.zeros(batch, STATE)
        embeds = bottle(enc, obs[1:])
        beliefs, prior_m, prior_s, post_z, post_m, post_s = trans(zeros_s, actions[:-1], zeros_b, embeds)
        recon, reward = bottle(obs_model, beliefs, post_z), bottle(rew_model, beliefs, post_z)
        loss_step(opt, params, recon, obs[1:], reward, rewards[:-1], (post_m, post_s), (prior_m, prior_s), free_nats)

    return step


def loss_step(opt, params, recon, obs, reward, rewards, posterior, prior, free_nats) -> None:
    """Kaixhin's loss (summed-pixel MSE + reward MSE + max(free nats, KL), means over T x B)
    and its optimiser step: zero_grad, backward, clip at 1000, Adam."""
    obs_loss = F.mse_loss(recon, obs, reduction="none").sum(dim=(2, 3, 4)).mean(dim=(0, 1))
    rew_loss = F.mse_loss(reward, rewards, reduction="none").mean(dim=(0, 1))
    kl = kl_divergence(Normal(*posterior), Normal(*prior)).sum(dim=2)
    kl_loss = torch.max(kl, free_nats).mean(dim=(0, 1))
    opt.zero_grad()
    (obs_loss + rew_loss + kl_loss).backward()
    nn.utils.clip_grad_norm_(params, 1000.0, norm_type=2)
    opt.step()


def make_kaixhin_step(models_dir: str, batch: int, length: int):
    """Kaixhin/PlaNet's `main.py` update (no overshooting) on its own `models.py` modules."""
    sys.path.insert(0, models_dir)
    import models as kx  # Kaixhin/PlaNet's models.py, from the checkout given

    torch.manual_seed(0)
    enc = kx.Encoder(False, (3, 64, 64), EMBED, "relu")
    trans = kx.TransitionModel(BELIEF, STATE, ACTION, HIDDEN, EMBED, "relu")
    obs_model = kx.ObservationModel(False, (3, 64, 64), BELIEF, STATE, EMBED, "relu")
    rew_model = kx.RewardModel(BELIEF, STATE, HIDDEN, "relu")
    params = [p for m in (trans, obs_model, rew_model, enc) for p in m.parameters()]
    opt = torch.optim.Adam(params, lr=1e-3, eps=1e-4)
    obs = torch.rand(length, batch, 3, 64, 64) - 0.5
    actions = torch.rand(length, batch, ACTION) * 2 - 1
    rewards = torch.randn(length, batch)
    nonterminals = torch.ones(length, batch, 1)
    free_nats = torch.full((1,), 3.0)

    def step():
        init_belief, init_state = torch.zeros(batch, BELIEF), torch.zeros(batch, STATE)
        beliefs, _, prior_m, prior_s, post_z, post_m, post_s = trans(
            init_state, actions[:-1], init_belief, kx.bottle(enc, (obs[1:],)), nonterminals[:-1]
        )
        recon, reward = kx.bottle(obs_model, (beliefs, post_z)), kx.bottle(rew_model, (beliefs, post_z))
        loss_step(opt, params, recon, obs[1:], reward, rewards[:-1], (post_m, post_s), (prior_m, prior_s), free_nats)

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[16, 50])
    parser.add_argument("--length", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None)
    parser.add_argument("--models", default=None, help="a Kaixhin/PlaNet checkout: time its own models.py")
    args = parser.parse_args()
    # How malloc serves the buffers, in `bench`'s words. hostmem is standard library only, so
    # it imports from the source tree into PyTorch's environment without planet_jax installed.
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
    from planet_jax.ops import hostmem

    pages = "".join(f", {part}" for part in [hostmem.describe()] if part)
    device = f"cpu ({torch.get_num_threads()} threads, {platform.processor() or platform.machine()}{pages})"
    records = []
    for batch in args.batch:
        step = make_kaixhin_step(args.models, batch, args.length) if args.models else make_step(batch, args.length)
        step()  # warm-up
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        rec = {
            "name": f"torch_update/B={batch}",
            "device": device,
            "torch": torch.__version__,
            "models": f"Kaixhin/PlaNet models.py ({args.models})" if args.models else "re-typed",
            "times_s": times,
            "median_s": statistics.median(times),
            "min_s": min(times),
            "max_s": max(times),
            "settings": {"batch": batch, "length": args.length},
        }
        print(f"{rec['name']:20s} median {rec['median_s']:.2f} s  [{rec['min_s']:.2f}, {rec['max_s']:.2f}]", flush=True)
        records.append(rec)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=1)


if __name__ == "__main__":
    main()
