using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using ZcProxy.Core.Transport;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Transport;

/// <summary>The real proxy host: the zero-copy transport on plaintext proxy listeners only, and nowhere when disabled.</summary>
public sealed class ProxyWiringTests
{
    private const int BodySize = 3_000_000;

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task ProxyListener_UsesZeroCopyTransport_OnlyWhenEnabled_AdminNever(bool enabled)
    {
        await using var origin = await TestOrigin.StartAsync("O", app => app.MapGet("/big", async (HttpContext c) =>
        {
            var body = new byte[BodySize];
            BodyPattern.Fill(body, 0);
            c.Response.ContentLength = BodySize;
            await c.Response.Body.WriteAsync(body);
        }));
        using var dir = new ConfigDirectory();
        dir.WriteMain($$"""
            { "Routes": { "r": { "ClusterId": "c", "Match": { "Path": "/{**rest}" } } },
              "Clusters": { {{ConfigDirectory.Cluster("c", ("o", origin.Url))}} } }
            """, $$"""  "ZeroCopy": { "Enabled": {{(enabled ? "true" : "false")}} }""");
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);
        var transport = proxy.Services.GetService<ZeroCopyTransport>();
        Assert.Equal(enabled, transport is not null);

        using var client = await RawHttpClient.ConnectAsync(new Uri(proxy.Url));
        for (int i = 0; i < 2; i++) // YARP's copied body goes through our writer; keep-alive stays in step
        {
            await client.SendAsync(RawHttpClient.Get("/big"));
            var response = await client.ReadResponseAsync();
            Assert.Equal((200, (long)BodySize, BodyPattern.Sha256(BodySize)), (response.Status, response.BodyLength, response.Sha));
        }
        using var admin = new HttpClient();
        Assert.Contains("zcproxy_body_bytes_total", await admin.GetStringAsync(proxy.AdminUrl + "/metrics"));
        if (transport is not null) Assert.Equal(1, transport.OpenConnections); // the proxy connection, not the admin one
    }
}
