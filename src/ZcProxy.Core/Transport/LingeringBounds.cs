namespace ZcProxy.Core.Transport;

/// <summary>
/// The two bounds of a lingering close, as nginx's: no byte for <c>LingeringTimeout</c> (counted again from each byte
/// dropped), and all of it within <c>LingeringTime</c> (counted from the start). Both transports' lingering use it and
/// keep their own ways of waiting (<see cref="LingeringClose"/>: a loop deadline; <see cref="SocketLingeringClose"/>: a
/// timer); time is the given clock's, so the arithmetic is tested with a fake one.
/// </summary>
internal struct LingeringBounds
{
    private readonly TimeProvider _clock;
    private readonly long _timeout; // in the clock's timestamp units
    private readonly long _until;
    private long _quietUntil;

    private LingeringBounds(TimeProvider clock, in LingeringSettings settings)
    {
        _clock = clock;
        long now = clock.GetTimestamp();
        _timeout = ToTimestampUnits(clock, settings.Timeout);
        _until = now + ToTimestampUnits(clock, settings.Time);
        _quietUntil = now + _timeout;
    }

    /// <summary>The bounds of a lingering close starting now.</summary>
    public static LingeringBounds Start(TimeProvider clock, in LingeringSettings settings) => new(clock, settings);

    /// <summary>A byte came (and was dropped): the timeout counts from now.</summary>
    public void ByteArrived() => _quietUntil = _clock.GetTimestamp() + _timeout;

    /// <summary>The bound reached by now, if any: <c>LingeringTime</c> first when both are.</summary>
    public readonly LingeringEnd? Reached()
    {
        long now = _clock.GetTimestamp();
        return now >= _until ? LingeringEnd.Time : now >= _quietUntil ? LingeringEnd.Timeout : null;
    }

    /// <summary>How long from now until the first bound is reached (zero once one is).</summary>
    public readonly TimeSpan Left()
    {
        long now = _clock.GetTimestamp(), next = Math.Min(_until, _quietUntil);
        return next > now ? _clock.GetElapsedTime(now, next) : TimeSpan.Zero;
    }

    private static long ToTimestampUnits(TimeProvider clock, TimeSpan span) => (long)(span.TotalSeconds * clock.TimestampFrequency);
}
