using ZcProxy.Core.Balancing;

namespace ZcProxy.Tests.Balancing;

public class ConnectionSlotsTests
{
    [Fact]
    public async Task Queue_IsBounded_FifoAndHandsOverReleasedSlots()
    {
        var slots = new ConnectionSlots(TimeProvider.System);
        Assert.True(slots.TryEnter(2));
        Assert.True(slots.TryEnter(2));
        Assert.False(slots.TryEnter(2));

        var first = slots.EnterAsync(2, maxQueue: 2, TimeSpan.FromSeconds(30), CancellationToken.None);
        var second = slots.EnterAsync(2, maxQueue: 2, TimeSpan.FromSeconds(30), CancellationToken.None);
        Assert.Equal(SlotResult.QueueFull, await slots.EnterAsync(2, maxQueue: 2, TimeSpan.FromSeconds(30), CancellationToken.None));
        Assert.Equal(2, slots.QueueLength);

        slots.Exit();
        Assert.Equal(SlotResult.Entered, await first);
        Assert.False(second.IsCompleted);
        Assert.Equal(2, slots.InUse);
        slots.Exit();
        Assert.Equal(SlotResult.Entered, await second);
        Assert.Equal(0, slots.QueueLength);
    }

    [Fact]
    public async Task QueuedRequest_TimesOut_AndLeavesTheQueue()
    {
        var slots = new ConnectionSlots(TimeProvider.System);
        Assert.True(slots.TryEnter(1));
        Assert.Equal(SlotResult.TimedOut, await slots.EnterAsync(1, maxQueue: 1, TimeSpan.FromMilliseconds(50), CancellationToken.None));
        Assert.Equal(0, slots.QueueLength);
        slots.Exit();
        Assert.Equal(0, slots.InUse);
    }
}
