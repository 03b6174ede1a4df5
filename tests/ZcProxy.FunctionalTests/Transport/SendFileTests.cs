using System.Net;
using System.Security.Cryptography;
using ZcProxy.Core.Diagnostics;

namespace ZcProxy.Tests.Transport;

[Collection(FdCountCollection.Name)] // byte-heavy: run apart from the timing-sensitive parallel tests
public sealed class SendFileTests
{
    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(64 * 1024 - 1)]
    [InlineData(64 * 1024)]
    [InlineData(16 * 1024 * 1024)]
    public async Task SendFile_BodyIsByteExact_AndCountedAsSendfile(long size)
    {
        await using var host = await ZeroCopyTestHost.StartAsync();
        using var client = new HttpClient { BaseAddress = host.BaseAddress };
        var (status, length, sha) = await GetHashedAsync(client, $"/file?size={size}");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(size, length);
        Assert.Equal(BodyPattern.Sha256(size), sha);
        await CounterAssert.BodyBytesAsync(host.Metrics, BodyMechanism.Sendfile, size);
        await CounterAssert.BodyBytesAsync(host.Metrics, BodyMechanism.Copy, 0);
    }

    [Theory]
    [InlineData("/file-nolength", "Copy", 200000)] // chunked by Kestrel: the sender's copy loop
    [InlineData("/file-started", "Copy", 200000)]  // head already sent: the sender's copy loop
    public async Task SendFile_Ineligible_FallsBack_ByteExact(string path, string mechanismName, long counted)
    {
        var mechanism = Enum.Parse<BodyMechanism>(mechanismName);
        await using var host = await ZeroCopyTestHost.StartAsync();
        using var client = new HttpClient { BaseAddress = host.BaseAddress };
        var (status, length, sha) = await GetHashedAsync(client, $"{path}?size=200000");
        Assert.Equal((HttpStatusCode.OK, 200000L, BodyPattern.Sha256(200000)), (status, length, sha));
        await CounterAssert.BodyBytesAsync(host.Metrics, mechanism, counted);
        Assert.Equal(0, host.Metrics.GetBodyBytes(BodyMechanism.Sendfile, BodyDirection.Response));
    }

    internal static async Task<(HttpStatusCode Status, long Length, string Sha)> GetHashedAsync(HttpClient client, string path)
    {
        using var response = await client.GetAsync(path, HttpCompletionOption.ResponseHeadersRead);
        await using var body = await response.Content.ReadAsStreamAsync();
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[1 << 20];
        long length = 0;
        int n;
        while ((n = await body.ReadAsync(buffer)) > 0)
        {
            hash.AppendData(buffer, 0, n);
            length += n;
        }
        return (response.StatusCode, length, Convert.ToHexString(hash.GetHashAndReset()));
    }
}
