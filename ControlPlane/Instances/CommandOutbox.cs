using Provisioner.Messaging;

namespace ControlPlane.Instances;

/// <summary>
/// The commands an instance's grain has decided on, waiting until the state that explains them is stored. A write that
/// fails takes back what it added (<see cref="TakeBack"/>); a bus that is down keeps them for the next tick.
/// </summary>
public sealed class CommandOutbox(IProvisioningCommandBus bus)
{
    private readonly List<ProvisioningCommand> _pending = [];

    /// <summary>Where the commands of the change about to be made begin.</summary>
    public int Mark => _pending.Count;

    public void Add(ProvisioningCommand command) => _pending.Add(command);

    /// <summary>Forgets the commands added since <paramref name="mark"/>: the change that called for them was not stored.</summary>
    public void TakeBack(int mark) => _pending.RemoveRange(mark, _pending.Count - mark);

    /// <summary>Sends in order; stops at the first failure, keeping it and the rest. Returns the failure, or null when all went.</summary>
    public async Task<Exception?> SendAsync()
    {
        while (_pending.Count > 0)
        {
            try
            {
                await bus.SendAsync(_pending[0]);
            }
            catch (Exception exception)
            {
                return exception;
            }

            _pending.RemoveAt(0);
        }

        return null;
    }

    public int Count => _pending.Count;
}
