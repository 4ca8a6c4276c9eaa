"""A reward model: a decoder (a GPT or a Llama) read by a scalar reward head, trained on preference pairs.

    rm = RewardModel(decoder)                                    # the head starts at zero: every reward 0
    Trainer(rm, preference_batches(pair_rows), ...).run()        # Bradley-Terry on r(chosen) - r(rejected)
    rm.rewards(idx, loss_mask)                                   # (B,) one score per row

The reward of a row is r = h . w + b, h the decoder's final hidden state at the last response position (the
position that reads the response's last token, where the loss mask ends): minilm.objectives' reward head. This
is the "learned objective function" of RLHF: supervised learning on comparisons, which then scores responses
that no one labelled. A checkpoint holds the decoder's parameters and the head's ("reward.w", "reward.b") and
names the decoder's class (minilm.checkpoint.load_model rebuilds it); `python -m minilm reward` trains one.
"""
from . import objectives

HEAD = ("reward.w", "reward.b")


def last_positions(loss_mask):
    """loss_mask: (B, T) -> (B,) each row's last position under the mask (its last response position)."""
    T = loss_mask.shape[1]
    return T - 1 - (loss_mask[:, ::-1] > 0).argmax(axis=1)


class RewardModel:
    """The Model contract (params, loss_and_grads, config, xp, checkpoint_meta) on a preference batch: params are
    the decoder's own arrays and the head's, so a step of the optimizer moves both."""
    reads_token_stream = False  # a pair's two rows must meet in one loss: the batch runs whole

    def __init__(self, decoder, head=None):
        xp, dtype = decoder.xp, decoder.config.dtype
        self.decoder, self.config, self.xp = decoder, decoder.config, xp
        head = head or {"reward.w": xp.zeros(decoder.config.d_model, dtype=dtype),
                        "reward.b": xp.zeros(1, dtype=dtype)}
        self.params = {**decoder.params, **head}

    def rewards(self, idx, loss_mask):
        """idx, loss_mask: (B, T) instruction rows -> (B,) their rewards, no gradient."""
        xp = self.xp
        return objectives.rewards(self.decoder, *self._head(), xp.asarray(idx), xp.asarray(last_positions(loss_mask)))

    def loss_and_grads(self, idx, targets, loss_mask):
        """A preference batch (the chosen rows, then their rejected rows) -> (Bradley-Terry loss, grads)."""
        xp = self.xp
        return objectives.reward_loss_and_grads(self.decoder, *self._head(), xp.asarray(idx),
                                                xp.asarray(last_positions(loss_mask)))

    def _head(self):
        return self.params["reward.w"], self.params["reward.b"]

    def checkpoint_meta(self):
        return {"model": "RewardModel", "decoder": type(self.decoder).__name__, "config": self.config.to_dict()}

    def num_params(self, non_embedding=False):
        return self.decoder.num_params(non_embedding) + int(sum(self.params[name].size for name in HEAD))
