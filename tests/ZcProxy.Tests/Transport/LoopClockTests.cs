using System.Diagnostics;
using ZcProxy.Core.Transport.Http1;
using ZcProxy.Core.Transport.Loops;

namespace ZcProxy.Tests.Transport;

/// <summary>
/// The loops' cached time: one clock read per turn on a loop thread, shared by everything that turn runs; a fresh
/// reading elsewhere; durations never negative.
/// </summary>
public sealed class LoopClockTests
{
    [Fact]
    public async Task OnALoopThread_TheTurnsStart_IsTheTime()
    {
        using var loop = new EventLoop(0);
        var read = new TaskCompletionSource<(long First, long Later, long Turn)>(TaskCreationOptions.RunContinuationsAsynchronously);
        loop.Post(_ =>
        {
            long first = LoopClock.Instance.GetTimestamp();
            long fresh = Stopwatch.GetTimestamp();
            while (Stopwatch.GetTimestamp() == fresh) Thread.SpinWait(10); // a fresh reading has moved
            read.SetResult((first, LoopClock.Timestamp(), loop.TurnStarted));
        }, null);
        var (first, later, turn) = await read.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(turn, first);
        Assert.Equal(turn, later);
        Assert.True(Stopwatch.GetTimestamp() > turn);
    }

    [Fact]
    public void OffTheLoops_TheClockIsRead()
    {
        long first = LoopClock.Timestamp();
        while (Stopwatch.GetTimestamp() == first) Thread.SpinWait(10);
        Assert.True(LoopClock.Timestamp() > first);
    }

    [Fact]
    public void Durations_AreNeverNegative()
    {
        long now = Stopwatch.GetTimestamp();
        Assert.Equal(TimeSpan.Zero, LoopClock.Between(now, now - 1000));
        Assert.Equal(TimeSpan.Zero, LoopClock.Elapsed(now + Stopwatch.Frequency));
        Assert.True(LoopClock.Between(now, now + Stopwatch.Frequency) == TimeSpan.FromSeconds(1));
    }

    [Fact]
    public void TheDateLine_IsTodaysRfc1123Date()
    {
        var span = new byte[Http1Date.Length];
        Assert.Equal(Http1Date.Length, Http1Date.Write(span));
        var line = System.Text.Encoding.ASCII.GetString(span);
        Assert.StartsWith("Date: ", line);
        Assert.EndsWith("\r\n", line);
        var date = DateTimeOffset.ParseExact(line[6..^2], "r", System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(DateTimeOffset.UtcNow - date, TimeSpan.Zero, TimeSpan.FromMinutes(1)); // the current second, not a stale line
    }
}
