using ZcProxy.Core.Balancing;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Transport.Loops;

namespace ZcProxy.Tests.Transport;

/// <summary>
/// Counters striped per event loop (each loop writes its own cache line; read summed): whatever thread counts, the
/// sum is every count; a try ended on another thread than it began leaves nothing in flight.
/// </summary>
public sealed class LoopStripeTests
{
    [Fact]
    public async Task ALoopThread_WritesAStripeOfItsOwn()
    {
        using var loop = new EventLoop(0);
        Assert.Equal(1, await OnLoopAsync(loop, () => LoopStripe.Current));
        Assert.Equal(0, LoopStripe.Current);
    }

    [Fact]
    public async Task ACounter_CountedOnTwoLoopsAndOffThem_SumsEveryCount()
    {
        using var first = new EventLoop(0);
        using var second = new EventLoop(1);
        var counter = new Counter();
        const int each = 10_000;
        await Task.WhenAll(
            OnLoopAsync(first, () => { for (int i = 0; i < each; i++) counter.Increment(); return 0; }),
            OnLoopAsync(second, () => { for (int i = 0; i < each; i++) counter.Add(2); return 0; }),
            Task.Run(() => { for (int i = 0; i < each; i++) counter.Increment(); }));
        Assert.Equal(4 * each, counter.Value);
    }

    [Fact]
    public async Task ATry_BegunOnALoopAndEndedOffIt_LeavesNothingInFlight()
    {
        using var loop = new EventLoop(0);
        var runtime = new DestinationRuntime("c", "d", TimeProvider.System);
        int countedOn = await OnLoopAsync(loop, runtime.BeginRequest);
        int offLoop = runtime.BeginRequest();
        Assert.Equal(2, runtime.ActiveRequests);

        runtime.EndRequest(TimeSpan.FromMilliseconds(3), countedOn); // ended on another thread than it began
        Assert.Equal(1, runtime.ActiveRequests);
        await OnLoopAsync(loop, () => { runtime.EndRequest(TimeSpan.FromMilliseconds(1), offLoop); return 0; });

        Assert.Equal(0, runtime.ActiveRequests);
        Assert.Equal(2, runtime.Requests);
        Assert.Equal(2, runtime.Completed);
        Assert.Equal(0.004, runtime.LatencySeconds, 6);
    }

    private static Task<T> OnLoopAsync<T>(EventLoop loop, Func<T> work)
    {
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        loop.Post(_ =>
        {
            try { done.SetResult(work()); }
            catch (Exception e) { done.SetException(e); }
        }, null);
        return done.Task.WaitAsync(TimeSpan.FromSeconds(30));
    }
}
