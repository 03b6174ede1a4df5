using Microsoft.Extensions.Time.Testing;
using ZcProxy.Core.Configuration;

namespace ZcProxy.Tests.Configuration;

/// <summary>The config watcher's timing on a fake clock: bursts are debounced, SIGHUP is not, the poll is the backstop.</summary>
public class ReloadSignalTests
{
    private static readonly TimeSpan Step = TimeSpan.FromMilliseconds(25);
    private readonly FakeTimeProvider _time = new();

    [Fact]
    public async Task BurstOfFileEvents_IsOneLook_AfterTheQuietPeriod()
    {
        using var signal = new ReloadSignal(_time);
        var next = signal.NextAsync(CancellationToken.None);
        for (int i = 0; i < 20; i++)
        {
            signal.FileChanged();
            _time.Advance(ReloadSignal.QuietPeriod / 3); // events keep coming faster than the quiet period
        }
        Assert.False(next.IsCompleted, "looked at the files while events were still arriving");
        var lastEvent = _time.GetUtcNow() - ReloadSignal.QuietPeriod / 3;

        Assert.Equal(ReloadCause.FileEvents, await AdvanceUntilDoneAsync(next));
        Assert.True(_time.GetUtcNow() - lastEvent >= ReloadSignal.QuietPeriod, $"looked {_time.GetUtcNow() - lastEvent} after the last event");

        // All twenty events were taken by that one look: the next one is the periodic check.
        var following = signal.NextAsync(CancellationToken.None);
        Assert.Equal(ReloadCause.Poll, await AdvanceUntilDoneAsync(following));
    }

    [Fact]
    public async Task Hangup_IsAnsweredAtOnce_EvenInsideABurst()
    {
        using var signal = new ReloadSignal(_time);
        var next = signal.NextAsync(CancellationToken.None);
        signal.FileChanged();
        signal.Hangup();
        Assert.Equal(ReloadCause.Hangup, await next.WaitAsync(TimeSpan.FromSeconds(20))); // the fake clock never moved
    }

    [Fact]
    public async Task WithoutEvents_ThePollComesEveryPollInterval()
    {
        using var signal = new ReloadSignal(_time);
        var start = _time.GetUtcNow();
        var next = signal.NextAsync(CancellationToken.None);
        Assert.Equal(ReloadCause.Poll, await AdvanceUntilDoneAsync(next));
        var waited = _time.GetUtcNow() - start;
        Assert.InRange(waited, ReloadSignal.PollInterval, ReloadSignal.PollInterval + 2 * Step + ReloadSignal.PollInterval / 10);
    }

    [Fact]
    public async Task TwoBurstsApart_AreTwoLooks()
    {
        using var signal = new ReloadSignal(_time);
        signal.FileChanged();
        Assert.Equal(ReloadCause.FileEvents, await AdvanceUntilDoneAsync(signal.NextAsync(CancellationToken.None)));
        signal.FileChanged();
        Assert.Equal(ReloadCause.FileEvents, await AdvanceUntilDoneAsync(signal.NextAsync(CancellationToken.None)));
    }

    /// <summary>Moves the fake clock in small steps until the look happens (bounded: 10 poll intervals of fake time).</summary>
    private async Task<ReloadCause> AdvanceUntilDoneAsync(Task<ReloadCause> next)
    {
        var limit = _time.GetUtcNow() + 10 * ReloadSignal.PollInterval;
        while (!next.IsCompleted && _time.GetUtcNow() < limit)
        {
            // Let the waiter arm its timer for the current fake time before the clock moves on (bounded, real time).
            await Task.WhenAny(next, Task.Delay(5));
            if (!next.IsCompleted) _time.Advance(Step);
        }
        Assert.True(next.IsCompleted, "no look within ten poll intervals of fake time");
        return await next;
    }
}
