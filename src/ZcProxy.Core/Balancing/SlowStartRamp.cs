namespace ZcProxy.Core.Balancing;

/// <summary>
/// HAProxy-style slow start: a destination that has just become healthy again gets a share of its weight that
/// grows linearly over the SlowStart time. A small floor keeps it receiving the trickle that proves it works.
/// </summary>
internal static class SlowStartRamp
{
    public const double Floor = 0.05;

    public static double Fraction(TimeSpan sinceRecovery, TimeSpan slowStart)
    {
        if (slowStart <= TimeSpan.Zero || sinceRecovery >= slowStart) return 1.0;
        if (sinceRecovery <= TimeSpan.Zero) return Floor;
        return Math.Max(Floor, sinceRecovery / slowStart);
    }
}
