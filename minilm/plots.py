"""Every figure minilm draws. Each function returns a matplotlib Figure (a notebook shows it inline;
the CLI saves it as a PNG)."""
import matplotlib.pyplot as plt


def loss_curve(history, title="training"):
    """Training loss per step and validation loss at each evaluation, on a log-scaled loss axis."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(history.steps, history.losses, lw=1, alpha=0.7, label="train (one batch)")
    if history.val_losses:
        ax.plot(history.val_steps, history.val_losses, "o-", ms=4, label="validation")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy loss (nats per token)")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig


def save(fig, path):
    """Write a figure to path and free it."""
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
