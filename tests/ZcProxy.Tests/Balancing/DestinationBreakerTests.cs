using Polly.CircuitBreaker;
using ZcProxy.Core.Balancing;

namespace ZcProxy.Tests.Balancing;

public class DestinationBreakerTests
{
    private static ValueTask<bool> Fail(int _) => ValueTask.FromResult(true);
    private static ValueTask<bool> Succeed(int _) => ValueTask.FromResult(false);

    [Fact]
    public async Task OpensAfterMaxFails_RefusesDuringBreak_ClosesAfterSuccessfulTrial()
    {
        var clock = new ManualTimeProvider();
        var breaker = new DestinationBreaker(3, 1.0, TimeSpan.FromSeconds(2), clock);

        Assert.True(await breaker.TryExecuteAsync(Fail, 0));
        Assert.True(await breaker.TryExecuteAsync(Fail, 0));
        Assert.False(breaker.IsBlocking);
        Assert.True(await breaker.TryExecuteAsync(Fail, 0));
        Assert.True(breaker.IsBlocking);
        Assert.Equal(CircuitState.Open, breaker.State);
        Assert.False(await breaker.TryExecuteAsync(Succeed, 0)); // refused while open

        clock.Advance(TimeSpan.FromSeconds(2.1));
        Assert.False(breaker.IsBlocking);
        Assert.True(await breaker.TryExecuteAsync(Succeed, 0)); // the half-open trial succeeds
        Assert.Equal(CircuitState.Closed, breaker.State);
        Assert.Equal(1, breaker.TimesOpened);
    }

    [Fact]
    public async Task ASuccessAmongFailures_KeepsItClosed()
    {
        var clock = new ManualTimeProvider();
        var breaker = new DestinationBreaker(3, 1.0, TimeSpan.FromSeconds(2), clock);
        for (int i = 0; i < 10; i++)
        {
            await breaker.TryExecuteAsync(Fail, 0);
            await breaker.TryExecuteAsync(Fail, 0);
            await breaker.TryExecuteAsync(Succeed, 0);
        }
        Assert.Equal(CircuitState.Closed, breaker.State);
    }
}

public class DestinationBreakerRatioTests
{
    [Fact]
    public async Task HalfTheTriesFailing_OpensAtTheDefaultRatio_OnceMaxFailsFailed()
    {
        var clock = new ManualTimeProvider();
        var breaker = new DestinationBreaker(3, 0.5, TimeSpan.FromSeconds(10), clock);
        await breaker.TryExecuteAsync(static _ => ValueTask.FromResult(false), 0);
        await breaker.TryExecuteAsync(static _ => ValueTask.FromResult(true), 0);
        await breaker.TryExecuteAsync(static _ => ValueTask.FromResult(false), 0);
        await breaker.TryExecuteAsync(static _ => ValueTask.FromResult(true), 0);
        await breaker.TryExecuteAsync(static _ => ValueTask.FromResult(false), 0);
        Assert.False(breaker.IsBlocking); // 2 failures of 5: fewer than MaxFails
        await breaker.TryExecuteAsync(static _ => ValueTask.FromResult(true), 0);
        Assert.True(breaker.IsBlocking); // 3 failures of 6 tries
    }
}
