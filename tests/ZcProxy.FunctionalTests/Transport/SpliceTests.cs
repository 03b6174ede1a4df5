using System.Net;
using ZcProxy.Core.Diagnostics;

namespace ZcProxy.Tests.Transport;

[Collection(FdCountCollection.Name)] // byte-heavy: run apart from the timing-sensitive parallel tests
public sealed class SpliceTests
{
    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(64 * 1024 - 1)]
    [InlineData(64 * 1024)]
    [InlineData(16 * 1024 * 1024)]
    public async Task Splice_BodyIsByteExact_AndCountedAsSplice(long size)
    {
        await using var host = await ZeroCopyTestHost.StartAsync();
        using var client = new HttpClient { BaseAddress = host.BaseAddress };
        var (status, length, sha) = await SendFileTests.GetHashedAsync(client, $"/splice?size={size}");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(size, length);
        Assert.Equal(BodyPattern.Sha256(size), sha);
        await CounterAssert.BodyBytesAsync(host.Metrics, BodyMechanism.Splice, size);
        await CounterAssert.BodyBytesAsync(host.Metrics, BodyMechanism.Copy, 0);
    }
}
