"""The world model of the paper (section 3): encoder, RSSM, decoders, the ELBO, one update.

networks    Flax modules: encoder, decoder, reward model, RSSM cells; `init_params`
rssm        the RSSM as pure functions: `observe_step`, `imagine_step`, `observe`, `imagine`
losses      the variational bound (eq. 3) with free nats, and latent overshooting (eq. 7)
preprocess  frames to 5-bit inputs in [-0.5, 0.5) with dequantisation noise
state       `TrainState` (params, optimizer state, key, per-agent hyperparameters), Adam
update      one gradient update, and a scan of them (one compiled call)
"""
