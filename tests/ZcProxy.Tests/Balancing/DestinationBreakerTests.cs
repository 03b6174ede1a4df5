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
        Assert.Equal(BreakerState.Open, breaker.State);
        Assert.False(await breaker.TryExecuteAsync(Succeed, 0)); // refused while open

        clock.Advance(TimeSpan.FromSeconds(2.1));
        Assert.False(breaker.IsBlocking);
        Assert.True(await breaker.TryExecuteAsync(Succeed, 0)); // the half-open trial succeeds
        Assert.Equal(BreakerState.Closed, breaker.State);
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
        Assert.Equal(BreakerState.Closed, breaker.State);
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

/// <summary>nginx's max_fails/fail_timeout: the defaults (MaxFails 1, FailTimeout 10s, no ratio) and the counting window.</summary>
public class DestinationBreakerNginxTests
{
    private static ValueTask<bool> Fail(int _) => ValueTask.FromResult(true);
    private static ValueTask<bool> Succeed(int _) => ValueTask.FromResult(false);

    [Fact]
    public async Task WithTheDefaults_OneFailureTakesTheDestinationOutFor10s_ThenOneTrialDecides()
    {
        var clock = new ManualTimeProvider();
        var defaults = ClusterBalancingSettings.Default;
        var breaker = new DestinationBreaker(defaults.BreakerMaxFails(destinations: 2), defaults.FailRatio, defaults.FailTimeout, clock);

        for (int i = 0; i < 100; i++) Assert.True(await breaker.TryExecuteAsync(Succeed, 0));
        Assert.True(await breaker.TryExecuteAsync(Fail, 0)); // one failure, however many successes came before
        Assert.True(breaker.IsBlocking);
        Assert.Equal(BreakerState.Open, breaker.State);

        clock.Advance(TimeSpan.FromSeconds(9.9));
        Assert.True(breaker.IsBlocking);
        Assert.False(await breaker.TryExecuteAsync(Succeed, 0));
        clock.Advance(TimeSpan.FromSeconds(0.2));
        Assert.False(breaker.IsBlocking);
        Assert.Equal(BreakerState.HalfOpen, breaker.State);
        Assert.True(await breaker.TryExecuteAsync(Fail, 0)); // the trial fails: out for another 10 s
        Assert.True(breaker.IsBlocking);
        Assert.Equal(2, breaker.TimesOpened);

        clock.Advance(TimeSpan.FromSeconds(10));
        Assert.True(await breaker.TryExecuteAsync(Succeed, 0)); // the trial succeeds: closed
        Assert.Equal(BreakerState.Closed, breaker.State);
        Assert.False(breaker.IsBlocking);
    }

    [Fact]
    public async Task HalfOpen_RefusesOtherTriesWhileTheTrialRuns()
    {
        var clock = new ManualTimeProvider();
        var breaker = new DestinationBreaker(1, null, TimeSpan.FromSeconds(10), clock);
        await breaker.TryExecuteAsync(Fail, 0);
        clock.Advance(TimeSpan.FromSeconds(11));

        var trialMayEnd = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        var trial = breaker.TryExecuteAsync(_ => new ValueTask<bool>(trialMayEnd.Task), 0).AsTask();
        Assert.False(await breaker.TryExecuteAsync(Succeed, 0)); // refused: the trial is in flight
        trialMayEnd.SetResult(false);
        Assert.True(await trial);
        Assert.Equal(BreakerState.Closed, breaker.State);
        Assert.True(await breaker.TryExecuteAsync(Succeed, 0));
    }

    [Fact]
    public async Task WithoutARatio_MaxFailsWithinTheWindowOpenIt_FailuresSpreadWiderDoNot()
    {
        var clock = new ManualTimeProvider();
        var breaker = new DestinationBreaker(3, null, TimeSpan.FromSeconds(10), clock);
        foreach (var failed in new[] { true, false, true, false, false })
            await breaker.TryExecuteAsync(_ => ValueTask.FromResult(failed), 0);
        clock.Advance(TimeSpan.FromSeconds(10)); // the window of the first two failures has passed
        await breaker.TryExecuteAsync(Fail, 0);
        await breaker.TryExecuteAsync(Fail, 0);
        Assert.False(breaker.IsBlocking); // 2 failures in this window
        await breaker.TryExecuteAsync(Succeed, 0);
        await breaker.TryExecuteAsync(Fail, 0);
        Assert.True(breaker.IsBlocking); // 3 failures among 4 tries within 10 s: no ratio asked
    }

    /// <summary>The per-try step's own form (no async frame of the breaker's): enter, then record or abandon.</summary>
    [Fact]
    public void EnteredTries_RecordedOrAbandoned_DecideLikeTryExecute()
    {
        var clock = new ManualTimeProvider();
        var breaker = new DestinationBreaker(1, null, TimeSpan.FromSeconds(10), clock);
        Assert.True(breaker.TryEnter(out bool trial));
        Assert.False(trial);
        breaker.Record(failed: true, trial);
        Assert.True(breaker.IsBlocking);
        Assert.False(breaker.TryEnter(out _)); // open: refused

        clock.Advance(TimeSpan.FromSeconds(11));
        Assert.True(breaker.TryEnter(out trial));
        Assert.True(trial);
        Assert.False(breaker.TryEnter(out _)); // the trial is in flight
        breaker.Abandon(trial); // it threw: no verdict, the next try is the trial
        Assert.True(breaker.TryEnter(out trial));
        Assert.True(trial);
        breaker.Record(failed: false, trial);
        Assert.Equal(BreakerState.Closed, breaker.State);
    }
}
