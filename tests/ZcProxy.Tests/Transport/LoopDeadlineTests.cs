using ZcProxy.Core.Transport.Loops;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Transport;

public sealed class LoopDeadlineTests
{
    /// <summary>Two round trips through the loop: the second runs after a whole iteration, sweep included, that began after the call.</summary>
    private static async Task LoopSweptAsync(EventLoop loop)
    {
        for (int i = 0; i < 2; i++)
        {
            var ran = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            loop.Post(static s => ((TaskCompletionSource)s!).SetResult(), ran);
            await ran.Task.WaitAsync(TimeSpan.FromSeconds(20));
        }
    }

    [Fact]
    public async Task Deadline_ExpiresOnTheLoopThread_OnlyOnceItsTimeHasPassed()
    {
        var clock = new ManualTimeProvider();
        using var loop = new EventLoop(0, time: clock);
        string? expiredOn = null;
        int expired = 0;
        var deadline = new LoopDeadline(_ => { expiredOn = Thread.CurrentThread.Name; Interlocked.Increment(ref expired); }, null);

        loop.Arm(deadline, TimeSpan.FromSeconds(10));
        clock.Advance(TimeSpan.FromSeconds(9));
        await LoopSweptAsync(loop);
        Assert.Equal(0, Volatile.Read(ref expired));
        Assert.True(deadline.IsArmed);

        clock.Advance(TimeSpan.FromSeconds(2));
        await LoopSweptAsync(loop);
        Assert.Equal(1, Volatile.Read(ref expired));
        Assert.Equal("zcproxy-loop-0", expiredOn);
        Assert.False(deadline.IsArmed);
        Assert.Equal(0, loop.ArmedDeadlineCount);
    }

    [Fact]
    public async Task DisarmedDeadline_NeverExpires_AndTheSameOneArmsAgain()
    {
        var clock = new ManualTimeProvider();
        using var loop = new EventLoop(0, time: clock);
        int expired = 0;
        var deadline = new LoopDeadline(_ => Interlocked.Increment(ref expired), null);
        var other = new LoopDeadline(_ => { }, null);

        loop.Arm(deadline, TimeSpan.FromSeconds(1));
        loop.Arm(other, TimeSpan.FromSeconds(30));
        deadline.Disarm();
        Assert.Equal(1, loop.ArmedDeadlineCount);
        clock.Advance(TimeSpan.FromSeconds(5));
        await LoopSweptAsync(loop);
        Assert.Equal(0, Volatile.Read(ref expired));

        // Re-arming moves it rather than adding it twice.
        loop.Arm(deadline, TimeSpan.FromSeconds(1));
        loop.Arm(deadline, TimeSpan.FromSeconds(2));
        Assert.Equal(2, loop.ArmedDeadlineCount);
        clock.Advance(TimeSpan.FromSeconds(1.5));
        await LoopSweptAsync(loop);
        Assert.Equal(0, Volatile.Read(ref expired));
        clock.Advance(TimeSpan.FromSeconds(1));
        await LoopSweptAsync(loop);
        Assert.Equal(1, Volatile.Read(ref expired));
        Assert.Equal(1, loop.ArmedDeadlineCount); // the 30 s one is still waiting
    }

    [Fact]
    public async Task Deadline_ArmedOnAnotherLoop_MovesThere()
    {
        var clock = new ManualTimeProvider();
        using var first = new EventLoop(0, time: clock);
        using var second = new EventLoop(1, time: clock);
        string? expiredOn = null;
        var deadline = new LoopDeadline(_ => expiredOn = Thread.CurrentThread.Name, null);
        first.Arm(deadline, TimeSpan.FromSeconds(1));
        second.Arm(deadline, TimeSpan.FromSeconds(1));
        Assert.Equal(0, first.ArmedDeadlineCount);
        clock.Advance(TimeSpan.FromSeconds(2));
        await LoopSweptAsync(first);
        await LoopSweptAsync(second);
        Assert.Equal("zcproxy-loop-1", expiredOn);
    }
}
