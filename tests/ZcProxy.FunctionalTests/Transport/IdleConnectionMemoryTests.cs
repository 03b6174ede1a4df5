using ZcProxy.Core.Transport;

namespace ZcProxy.Tests.Transport;

/// <summary>Memory held by idle keep-alive client connections of ZcProxy's own transport (issue 12: ≤ 4 KiB each).</summary>
public sealed class IdleConnectionMemoryTests
{
    [Fact]
    public async Task IdleKeepAliveConnections_HoldNoInputOrOutputBlock()
    {
        await using var host = await ZeroCopyTestHost.StartAsync();
        const int Connections = 20;
        var clients = new List<RawHttpClient>();
        try
        {
            for (int i = 0; i < Connections; i++)
            {
                var client = await RawHttpClient.ConnectAsync(host.BaseAddress);
                clients.Add(client);
                await client.SendAsync(RawHttpClient.Get("/file?size=1000"));
                var (status, length, _, _) = await client.ReadResponseAsync();
                Assert.Equal(200, status);
                Assert.Equal(1000, length);
            }
            Assert.Equal(Connections, host.Transport.OpenConnections);
            // Each served a response and waits for its next request: a 16 KiB block kept per connection would show here.
            await Poll.UntilAsync(() => host.Transport.BlocksInUse == 0, $"no blocks held by {Connections} idle connections (held: {host.Transport.BlocksInUse})");

            // And they still work: the next request on each takes a block and gives it back.
            foreach (var client in clients)
            {
                await client.SendAsync(RawHttpClient.Get("/file?size=2000"));
                Assert.Equal(2000, (await client.ReadResponseAsync()).BodyLength);
            }
            await Poll.UntilAsync(() => host.Transport.BlocksInUse == 0, "no blocks held after the second requests");
        }
        finally
        {
            foreach (var client in clients) client.Dispose();
        }
    }
}
