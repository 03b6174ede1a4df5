using Microsoft.Extensions.Time.Testing;
using ZcProxy.Core.Transport;

namespace ZcProxy.Tests.Transport;

/// <summary>The bounds of a lingering close on a fake clock: LingeringTimeout from the last byte, LingeringTime from the start.</summary>
public sealed class LingeringBoundsTests
{
    private static readonly LingeringSettings Settings = new("on", Time: TimeSpan.FromSeconds(10), Timeout: TimeSpan.FromSeconds(2));
    private readonly FakeTimeProvider _clock = new();

    [Fact]
    public void NoByte_TheTimeoutIsReachedAtItsTime_NotBefore()
    {
        var bounds = LingeringBounds.Start(_clock, Settings);
        Assert.Equal(TimeSpan.FromSeconds(2), bounds.Left());
        _clock.Advance(TimeSpan.FromSeconds(2) - TimeSpan.FromTicks(1));
        Assert.Null(bounds.Reached());
        Assert.Equal(TimeSpan.FromTicks(1), bounds.Left());
        _clock.Advance(TimeSpan.FromTicks(1));
        Assert.Equal(LingeringEnd.Timeout, bounds.Reached());
        Assert.Equal(TimeSpan.Zero, bounds.Left());
    }

    [Fact]
    public void EachByte_RestartsTheTimeout()
    {
        var bounds = LingeringBounds.Start(_clock, Settings);
        _clock.Advance(TimeSpan.FromSeconds(1.5));
        bounds.ByteArrived();
        Assert.Equal(TimeSpan.FromSeconds(2), bounds.Left());
        _clock.Advance(TimeSpan.FromSeconds(1.9));
        Assert.Null(bounds.Reached()); // 3.4 s from the start: past the first timeout, not past the one from the byte
        _clock.Advance(TimeSpan.FromSeconds(0.1));
        Assert.Equal(LingeringEnd.Timeout, bounds.Reached());
    }

    [Fact]
    public void BytesThatNeverStop_AreCutAtTheLingeringTime_CountedFromTheStart()
    {
        var bounds = LingeringBounds.Start(_clock, Settings);
        for (int second = 1; second <= 9; second++)
        {
            _clock.Advance(TimeSpan.FromSeconds(1));
            bounds.ByteArrived();
            Assert.Null(bounds.Reached());
        }
        _clock.Advance(TimeSpan.FromSeconds(0.5));
        bounds.ByteArrived();
        Assert.Equal(TimeSpan.FromSeconds(0.5), bounds.Left()); // what is left of the time, less than the timeout
        _clock.Advance(TimeSpan.FromSeconds(0.5));
        Assert.Equal(LingeringEnd.Time, bounds.Reached());
    }

    [Fact]
    public void BothReachedAtOnce_TheTimeIsTheOneReported()
    {
        var bounds = LingeringBounds.Start(_clock, Settings with { Time = TimeSpan.FromSeconds(2) });
        _clock.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal(LingeringEnd.Time, bounds.Reached());
    }
}
