using ZcProxy.Core.Configuration;
using ZcProxy.Hosting;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Compression;

public class CompressionConfigCheckTests
{
    private static async Task<List<ConfigError>> CheckAsync(string metadata)
    {
        using var dir = new ConfigDirectory();
        var main = dir.WriteAtomically(dir.MainFile, $$"""
            { "ReverseProxy": {
                "Routes": { "r": { "ClusterId": "c", "Match": { "Path": "/{**rest}" }, "Metadata": { {{metadata}} } } },
                "Clusters": { "c": { "Destinations": { "d": { "Address": "http://127.0.0.1:1/" } } } } } }
            """);
        var (_, errors) = await ProxyServices.LoadAndValidateAsync(main);
        return errors;
    }

    [Theory]
    [InlineData("\"Compression\": \"on\"")]
    [InlineData("\"Compression\": \"off\"")]
    [InlineData("\"Compression\": \"on\", \"CompressionTypes\": \"text/html, application/json image/svg+xml\"")]
    public async Task ValidSettings_AreAccepted(string metadata) => Assert.Empty(await CheckAsync(metadata));

    [Theory]
    [InlineData("\"Compression\": \"gzip\"", "$.ReverseProxy.Routes.r.Metadata.Compression", "neither \"on\" nor \"off\"")]
    [InlineData("\"Compression\": \"on\", \"CompressionTypes\": \" , \"", "$.ReverseProxy.Routes.r.Metadata.CompressionTypes", "names no media type")]
    [InlineData("\"Compression\": \"on\", \"CompressionTypes\": \"text/*\"", "$.ReverseProxy.Routes.r.Metadata.CompressionTypes", "'text/*' is not a media type")]
    [InlineData("\"Compression\": \"on\", \"CompressionTypes\": \"html\"", "$.ReverseProxy.Routes.r.Metadata.CompressionTypes", "'html' is not a media type")]
    public async Task BadSetting_IsAnErrorAtItsPath(string metadata, string path, string message)
    {
        var errors = await CheckAsync(metadata);
        Assert.Contains(errors, e => e.JsonPath == path && e.Message.Contains(message, StringComparison.Ordinal));
    }
}
