using System.Net;
using ZcProxy.Core.Diagnostics;

namespace ZcProxy.Tests.Transport;

/// <summary>One 256 MiB body per mechanism: byte-exact, and every byte counted by the mechanism that moved it.</summary>
[Collection(FdCountCollection.Name)] // heavy: run alone rather than competing with the parallel tests
public sealed class LargeBodyTests
{
    private const long Size = 256L << 20;

    [Theory]
    [InlineData("/file", "Sendfile")]
    [InlineData("/splice", "Splice")]
    public async Task Body256MiB_IsByteExact_AndCounted(string path, string mechanismName)
    {
        var mechanism = Enum.Parse<BodyMechanism>(mechanismName);
        await using var host = await ZeroCopyTestHost.StartAsync();
        using var client = new HttpClient { BaseAddress = host.BaseAddress, Timeout = TimeSpan.FromMinutes(2) };
        var (status, length, sha) = await SendFileTests.GetHashedAsync(client, $"{path}?size={Size}");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(Size, length);
        Assert.Equal(BodyPattern.Sha256(Size), sha);
        await CounterAssert.BodyBytesAsync(host.Metrics, mechanism, Size);
        await CounterAssert.BodyBytesAsync(host.Metrics, BodyMechanism.Copy, 0);
    }
}
