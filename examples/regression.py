# The PyTorch twin of regression.mjs, line for line. Run: python3 examples/regression.py
import os
import tempfile

import torch
from torch import nn, optim
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
# y = x0^2 - 2 x1 + x1 x2, from 2,048 samples of 3 features
x = torch.randn(2048, 3)
x0, x1, x2 = x.split(1, 1)
y = (x0.square() - x1 * 2 + x1 * x2).detach()
train_x, test_x = x.split([1792, 256])
train_y, test_y = y.split([1792, 256])


class Net(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(3, hidden), nn.BatchNorm1d(hidden), nn.ReLU())
        self.skip = nn.Linear(3, hidden)
        self.head = nn.Linear(2 * hidden, 1)

    def forward(self, x):
        h = torch.cat([self.body(x), self.skip(x).relu()], 1)
        return self.head(h)


def setup():
    model = Net(64)
    optimizer = optim.Adam(model.parameters(), lr=0.01)
    scheduler = optim.lr_scheduler.StepLR(optimizer, step_size=4, gamma=0.5)
    generator = torch.Generator().manual_seed(0)
    loader = DataLoader(TensorDataset(train_x, train_y), batch_size=64, shuffle=True, generator=generator)
    return model, optimizer, scheduler, loader, generator


test = DataLoader(TensorDataset(test_x, test_y), batch_size=256)
path = os.path.join(tempfile.gettempdir(), 'regression-checkpoint.pt')


def run_epochs(model, optimizer, scheduler, loader, epochs):
    for epoch in epochs:
        model.train()
        total = 0.0
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = nn.functional.mse_loss(model(xb), yb)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(xb)
        scheduler.step()
        model.eval()
        with torch.no_grad():
            out = model(test_x)
            test_loss, mae = nn.functional.mse_loss(out, test_y).item(), (out - test_y).abs().mean().item()
        print(f'epoch {epoch}: train {total / len(loader.dataset):.4f}, test {test_loss:.4f}, mae {mae:.4f}')


# three epochs, then a checkpoint
model, optimizer, scheduler, loader, generator = setup()
print(model)
run_epochs(model, optimizer, scheduler, loader, range(1, 4))
torch.save({'model': model.state_dict(), 'optimizer': optimizer.state_dict(), 'scheduler': scheduler.state_dict(),
            'generator': generator.get_state(), 'rng': torch.get_rng_state(), 'epoch': 3}, path)

# a new process would start here: the same objects, restored from the checkpoint, three more epochs
model, optimizer, scheduler, loader, generator = setup()
checkpoint = torch.load(path)
model.load_state_dict(checkpoint['model'])
optimizer.load_state_dict(checkpoint['optimizer'])
scheduler.load_state_dict(checkpoint['scheduler'])
generator.set_state(checkpoint['generator'])
torch.set_rng_state(checkpoint['rng'])
run_epochs(model, optimizer, scheduler, loader, range(checkpoint['epoch'] + 1, 7))
model.eval()
with torch.no_grad():
    print(f'test MSE {nn.functional.mse_loss(model(test_x), test_y).item():.4f}, lr {scheduler.get_last_lr()[0]}')
    print(model(test_x[:3]))
print(test_y[:3])
