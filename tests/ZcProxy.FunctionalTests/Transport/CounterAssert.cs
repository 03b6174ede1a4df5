using ZcProxy.Core.Diagnostics;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Transport;

/// <summary>
/// Counters are added right after each syscall returns, so a client may read the last body byte an instant
/// before the count lands: wait (bounded) for the expected value, then assert it exactly.
/// </summary>
internal static class CounterAssert
{
    public static async Task BodyBytesAsync(ProxyMetrics metrics, BodyMechanism mechanism, long expected)
    {
        try { await Poll.UntilAsync(() => metrics.GetBodyBytes(mechanism, BodyDirection.Response) >= expected, $"{mechanism} bytes reach {expected}", TimeSpan.FromSeconds(5)); }
        catch (TimeoutException) { }
        Assert.Equal(expected, metrics.GetBodyBytes(mechanism, BodyDirection.Response));
    }
}
