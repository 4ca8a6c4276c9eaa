"""The base a fine-tuning starts from, as one record: a minilm checkpoint's path, or a pretrained model's name.

    Base(checkpoint="runs/demo/model.npz")      # a checkpoint of train, the demo, finetune...
    Base(pretrained="smollm2")                  # or smollm2, a .gguf file, a GPT-2 folder (minilm.pretrained)

The command line makes one from `CKPT` or `--pretrained NAME`, and every loader below takes it as it is
(minilm.checkpoint.load_base). A LoRA checkpoint stores its base as {"checkpoint": PATH} (the path from the
checkpoint's own folder, so that the two can move together) or {"pretrained": NAME}.
"""
import os
from dataclasses import dataclass

from .errors import MinilmError


@dataclass(frozen=True)
class Base:
    checkpoint: str | None = None  # a minilm checkpoint's path
    pretrained: str | None = None  # smollm2, a Llama-family .gguf file or a GPT-2 folder

    def __post_init__(self):
        if (self.checkpoint is None) == (self.pretrained is None):
            raise MinilmError("a base is either a checkpoint or a pretrained model: give exactly one")

    def __str__(self):
        """As the user typed it: the checkpoint's path or the pretrained model's name."""
        return self.checkpoint or self.pretrained

    def absolute(self):
        """The same base, its file or folder named by an absolute path (a name such as smollm2 stays as it is),
        whatever folder it is used from."""
        if self.checkpoint is not None:
            return Base(checkpoint=os.path.abspath(self.checkpoint))
        return Base(pretrained=os.path.abspath(self.pretrained) if os.path.exists(self.pretrained) else self.pretrained)

    def to_json(self, folder=None):
        """{"checkpoint": PATH} (the path from folder, where one is given and it can be) or {"pretrained": NAME}."""
        if self.pretrained is not None:
            return {"pretrained": self.pretrained}
        try:
            return {"checkpoint": os.path.relpath(self.checkpoint, folder) if folder else self.checkpoint}
        except ValueError:  # on another drive (Windows): only the absolute path reaches it
            return {"checkpoint": self.checkpoint}

    @classmethod
    def from_json(cls, stored, folder):
        """to_json's record back, a checkpoint's path resolved from folder (an absolute one stays as it is)."""
        if "pretrained" in stored:
            return cls(pretrained=stored["pretrained"])
        return cls(checkpoint=os.path.normpath(os.path.join(folder, stored["checkpoint"])))
