"""Training a style model: settings, the pair dataset, the VGG-19 loss network and losses, the training
loop, distillation into the lite network, and the files of a run."""
