using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace ZcProxy.Tests.Balancing;

/// <summary>An origin whose /hold requests wait until released, recording the highest concurrency it saw.</summary>
internal sealed class HoldingOrigin
{
    private int _inFlight;
    private int _max;
    public TaskCompletionSource Release { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    public int InFlight => Volatile.Read(ref _inFlight);
    public int MaxInFlight => Volatile.Read(ref _max);

    public void Map(WebApplication app) => app.MapGet("/hold", async (HttpContext context) =>
    {
        int now = Interlocked.Increment(ref _inFlight);
        int seen;
        while (now > (seen = Volatile.Read(ref _max)) && Interlocked.CompareExchange(ref _max, now, seen) != seen) { }
        try { await Release.Task.WaitAsync(TimeSpan.FromSeconds(20)); }
        finally { Interlocked.Decrement(ref _inFlight); }
        return "held";
    });
}
