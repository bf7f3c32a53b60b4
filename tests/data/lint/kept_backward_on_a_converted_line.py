"""torch.distributed.autograd.backward(...) is a torch function kept with its TODO (PTJ403), as
lint reports it, not also a training call left out of a step: the rewrite used to add a PTJ203
for it and report that one at line 0 (found in torch's own distributed autograd tests)."""
import torch


def check(net, inputs, context_id):
    loss = net(inputs).norm()
    torch.distributed.autograd.backward(context_id, [loss])  # distributed autograd, kept
    grads = torch.distributed.autograd.get_gradients(context_id)
    loss.backward()
    return grads
