using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using ZcProxy.Admin;
using ZcProxy.Core.Configuration;
using ZcProxy.Hosting;
using ZcProxy.Tests.Caching;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Admin;

/// <summary>
/// The admin listener's mutating endpoints (cache purge) refuse cross-site browser requests and, with Admin.Token or
/// Admin.TokenFile, requests without the bearer token; GETs stay open.
/// </summary>
public class AdminGuardTests
{
    /// <summary>A proxy with a cache-enabled route in front of an origin, and an Admin section with <paramref name="adminExtra"/>.</summary>
    private sealed class Rig : IAsyncDisposable
    {
        public required TestOrigin Origin { get; init; }
        public required ConfigDirectory Dir { get; init; }
        public required InProcessProxy Proxy { get; init; }
        public int AdminPort => new Uri(Proxy.AdminUrl).Port;

        public static async Task<Rig> StartAsync(string adminExtra = "")
        {
            var origin = await TestOrigin.StartAsync("origin", app => app.MapGet("/p", (HttpContext c) =>
            {
                c.Response.Headers.CacheControl = "max-age=600";
                return "page";
            }));
            var dir = new ConfigDirectory();
            WriteMain(dir, origin, adminExtra);
            return new Rig { Origin = origin, Dir = dir, Proxy = await InProcessProxy.StartAsync(dir.MainFile) };
        }

        public static void WriteMain(ConfigDirectory dir, TestOrigin origin, string adminExtra) => dir.WriteAtomically(dir.MainFile, $$"""
            {
              "Listen": [ { "Url": "http://127.0.0.1:0" } ],
              "Admin": { "Url": "http://127.0.0.1:0" {{(adminExtra.Length > 0 ? "," + adminExtra : "")}} },
              "Cache": { "Path": "cache" },
              "AccessLog": { "Path": "off" },
              "ReverseProxy": {
                "Routes": { "r": { "ClusterId": "o", "Match": { "Path": "/{**rest}" }, "Metadata": { "Cache": "on" } } },
                "Clusters": { {{ConfigDirectory.Cluster("o", ("o1", origin.Url))}} }
              }
            }
            """);

        /// <summary>Stores /p and returns the purge request for it (the caller adds headers).</summary>
        public async Task<HttpRequestMessage> PurgeOfStoredPageAsync(HttpMethod? method = null)
        {
            await CacheRig.Client.GetAsync(Proxy.Url + "/p");
            Assert.Equal("HIT", await StatusOfPageAsync());
            var host = new Uri(Proxy.Url).Authority;
            return new HttpRequestMessage(method ?? HttpMethod.Delete, $"{Proxy.AdminUrl}/cache?url={Uri.EscapeDataString($"http://{host}/p")}");
        }

        public async Task<string> StatusOfPageAsync() => CacheRig.CacheStatusOf(await CacheRig.Client.GetAsync(Proxy.Url + "/p"));

        public async ValueTask DisposeAsync()
        {
            await Proxy.DisposeAsync();
            await Origin.DisposeAsync();
            Dir.Dispose();
        }
    }

    private static async Task AssertRefusedAsync(HttpResponseMessage response, HttpStatusCode status, string errorContains)
    {
        Assert.Equal(status, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Contains(errorContains, json.RootElement.GetProperty("error").GetString());
    }

    [Theory]
    [InlineData("Origin", "http://evil.example")]
    [InlineData("Origin", "null")]                          // sandboxed frames, file:// pages
    [InlineData("Sec-Fetch-Site", "cross-site")]
    [InlineData("Sec-Fetch-Site", "same-site")]             // e.g. a page the proxy serves on 127.0.0.1:8080
    public async Task Purge_FromAnotherSite_Refused403_NothingPurged(string header, string value)
    {
        await using var rig = await Rig.StartAsync();
        var purge = await rig.PurgeOfStoredPageAsync();
        purge.Headers.TryAddWithoutValidation(header, value);
        await AssertRefusedAsync(await CacheRig.Client.SendAsync(purge), HttpStatusCode.Forbidden, "cross-site"); // before: 200 {"purged":1}
        Assert.Equal("HIT", await rig.StatusOfPageAsync());
    }

    [Fact]
    public async Task Purge_HtmlFormPostFromAnotherSite_Refused()
    {
        // The classic CSRF: a form on any web page, auto-submitted; no preflight protects a form POST.
        await using var rig = await Rig.StartAsync();
        var purge = await rig.PurgeOfStoredPageAsync(HttpMethod.Post);
        purge.Content = new FormUrlEncodedContent([]);
        purge.Headers.Add("Origin", "https://attacker.example");
        purge.Headers.Add("Sec-Fetch-Site", "cross-site");
        Assert.Equal(HttpStatusCode.Forbidden, (await CacheRig.Client.SendAsync(purge)).StatusCode);
        Assert.Equal("HIT", await rig.StatusOfPageAsync());
    }

    [Fact]
    public async Task Origin_OnlyTheListenersOwnAddressCounts()
    {
        await using var rig = await Rig.StartAsync();
        var proxyPort = new Uri(rig.Proxy.Url).Port;
        async Task<HttpStatusCode> PurgeWithOriginAsync(string origin)
        {
            var purge = await rig.PurgeOfStoredPageAsync();
            purge.Headers.Add("Origin", origin);
            return (await CacheRig.Client.SendAsync(purge)).StatusCode;
        }
        Assert.Equal(HttpStatusCode.OK, await PurgeWithOriginAsync($"http://127.0.0.1:{rig.AdminPort}"));
        Assert.Equal(HttpStatusCode.OK, await PurgeWithOriginAsync($"http://localhost:{rig.AdminPort}"));
        Assert.Equal(HttpStatusCode.Forbidden, await PurgeWithOriginAsync($"http://127.0.0.1:{proxyPort}"));     // same host, another port
        Assert.Equal(HttpStatusCode.Forbidden, await PurgeWithOriginAsync($"https://127.0.0.1:{rig.AdminPort}")); // another scheme
        Assert.Equal(HttpStatusCode.Forbidden, await PurgeWithOriginAsync($"http://rebound.example:{rig.AdminPort}")); // DNS rebinding
    }

    [Theory]
    [InlineData(null)]
    [InlineData("same-origin")]
    [InlineData("none")] // typed into the address bar / curl-like tools that send it
    public async Task Purge_WithoutTokenConfigured_SameOriginOrNonBrowser_Works(string? fetchSite)
    {
        await using var rig = await Rig.StartAsync();
        var purge = await rig.PurgeOfStoredPageAsync();
        if (fetchSite is not null) purge.Headers.Add("Sec-Fetch-Site", fetchSite);
        var response = await CacheRig.Client.SendAsync(purge);
        Assert.Equal("{\"purged\":1}", await response.Content.ReadAsStringAsync());
        Assert.Equal("MISS", await rig.StatusOfPageAsync());
    }

    [Fact]
    public async Task Token_RequiredOnMutatingEndpoints_GetsStayOpen()
    {
        await using var rig = await Rig.StartAsync("\"Token\": \"s3cret-Token_1\"");
        var missing = await CacheRig.Client.SendAsync(await rig.PurgeOfStoredPageAsync());
        await AssertRefusedAsync(missing, HttpStatusCode.Unauthorized, "Bearer");
        Assert.Equal("Bearer realm=\"zcproxy-admin\"", missing.Headers.WwwAuthenticate.ToString());

        foreach (var wrong in new[] { "Bearer s3cret-Token_", "Bearer s3cret-Token_12", "Bearer S3CRET-TOKEN_1", "Basic s3cret-Token_1", "s3cret-Token_1" })
        {
            var purge = await rig.PurgeOfStoredPageAsync();
            purge.Headers.TryAddWithoutValidation("Authorization", wrong);
            Assert.Equal(HttpStatusCode.Unauthorized, (await CacheRig.Client.SendAsync(purge)).StatusCode);
        }
        Assert.Equal("HIT", await rig.StatusOfPageAsync());

        var right = await rig.PurgeOfStoredPageAsync();
        right.Headers.Add("Authorization", "Bearer s3cret-Token_1");
        Assert.Equal("{\"purged\":1}", await (await CacheRig.Client.SendAsync(right)).Content.ReadAsStringAsync());

        foreach (var path in new[] { "/healthz", "/metrics", "/status" })
            Assert.Equal(HttpStatusCode.OK, (await CacheRig.Client.GetAsync(rig.Proxy.AdminUrl + path)).StatusCode);
    }

    [Fact]
    public async Task Token_DoesNotExcuseACrossSiteRequest()
    {
        await using var rig = await Rig.StartAsync("\"Token\": \"t0ken\"");
        var purge = await rig.PurgeOfStoredPageAsync();
        purge.Headers.Add("Authorization", "Bearer t0ken");
        purge.Headers.Add("Origin", "http://evil.example");
        Assert.Equal(HttpStatusCode.Forbidden, (await CacheRig.Client.SendAsync(purge)).StatusCode);
    }

    [Fact]
    public async Task TokenFile_TrimmedAndReadOnEveryRequest_SoRotationTakesEffectAtOnce()
    {
        using var scratch = new ConfigDirectory();
        var file = Path.Combine(scratch.Root, "admin.token");
        File.WriteAllText(file, "first-token\n");
        await using var rig = await Rig.StartAsync($"\"TokenFile\": \"{file}\"");
        async Task<HttpStatusCode> PurgeWithAsync(string token)
        {
            var purge = await rig.PurgeOfStoredPageAsync();
            purge.Headers.Add("Authorization", "Bearer " + token);
            return (await CacheRig.Client.SendAsync(purge)).StatusCode;
        }
        Assert.Equal(HttpStatusCode.OK, await PurgeWithAsync("first-token"));
        File.WriteAllText(file, "second-token");
        Assert.Equal(HttpStatusCode.Unauthorized, await PurgeWithAsync("first-token"));
        Assert.Equal(HttpStatusCode.OK, await PurgeWithAsync("second-token"));

        File.Delete(file); // vanished after start: refused (fail closed), never open
        await AssertRefusedAsync(await CacheRig.Client.SendAsync(await rig.PurgeOfStoredPageAsync()), HttpStatusCode.ServiceUnavailable, "token");
    }

    [Fact]
    public async Task Token_ChangedByReload_AppliesWithoutRestart()
    {
        await using var rig = await Rig.StartAsync("\"Token\": \"old-token\"");
        Rig.WriteMain(rig.Dir, rig.Origin, "\"Token\": \"new-token\"");
        Assert.True((await rig.Proxy.Get<FileConfigProvider>().ReloadAsync("test")).Applied);
        var purge = await rig.PurgeOfStoredPageAsync();
        purge.Headers.Add("Authorization", "Bearer old-token");
        Assert.Equal(HttpStatusCode.Unauthorized, (await CacheRig.Client.SendAsync(purge)).StatusCode);
        purge = await rig.PurgeOfStoredPageAsync();
        purge.Headers.Add("Authorization", "Bearer new-token");
        Assert.Equal(HttpStatusCode.OK, (await CacheRig.Client.SendAsync(purge)).StatusCode);
    }

    private static async Task<List<ConfigError>> CheckAdminAsync(ConfigDirectory dir, string adminJson)
    {
        dir.WriteMain("""{ "Routes": {}, "Clusters": {} }""");
        var text = File.ReadAllText(dir.MainFile).Replace("\"Admin\": { \"Url\": \"http://127.0.0.1:0\" }", adminJson, StringComparison.Ordinal);
        dir.WriteAtomically(dir.MainFile, text);
        return await dir.ValidateAsync();
    }

    [Fact]
    public async Task Check_ValidatesTokenAndTokenFile()
    {
        using var dir = new ConfigDirectory();
        File.WriteAllText(Path.Combine(dir.Root, "good.token"), "abc\n");
        File.WriteAllText(Path.Combine(dir.Root, "empty.token"), " \n");
        async Task<string> OneErrorAsync(string admin)
        {
            var error = Assert.Single(await CheckAdminAsync(dir, admin));
            return $"{error.JsonPath}: {error.Message}";
        }
        Assert.Empty(await CheckAdminAsync(dir, """ "Admin": { "Url": "http://127.0.0.1:0", "TokenFile": "good.token" } """)); // relative to the main file
        Assert.Empty(await CheckAdminAsync(dir, """ "Admin": { "Url": "http://127.0.0.1:0", "Token": "abc" } """));
        Assert.StartsWith("$.Admin.TokenFile: cannot read the token file", await OneErrorAsync(""" "Admin": { "Url": "http://127.0.0.1:0", "TokenFile": "missing.token" } """));
        Assert.EndsWith("is empty", await OneErrorAsync(""" "Admin": { "Url": "http://127.0.0.1:0", "TokenFile": "empty.token" } """));
        Assert.Equal("$.Admin.Token: the token is empty", await OneErrorAsync(""" "Admin": { "Url": "http://127.0.0.1:0", "Token": "" } """));
        Assert.StartsWith("$.Admin.Token: the token must be printable ASCII", await OneErrorAsync(""" "Admin": { "Url": "http://127.0.0.1:0", "Token": "two words" } """));
        Assert.Equal("$.Admin.TokenFile: give Token or TokenFile, not both",
            await OneErrorAsync(""" "Admin": { "Url": "http://127.0.0.1:0", "Token": "abc", "TokenFile": "good.token" } """));
    }

    [Theory]
    [InlineData("Bearer tok", true)]
    [InlineData("bearer tok", true)]
    [InlineData("Bearer  tok ", true)]
    [InlineData("Bearer to", false)]
    [InlineData("Bearer tokk", false)]
    [InlineData("Bearer ", false)]
    [InlineData("Basic tok", false)]
    [InlineData("tok", false)]
    [InlineData(null, false)]
    public void Presented_BearerSchemeAndExactToken(string? authorization, bool accepted)
        => Assert.Equal(accepted, AdminToken.Presented(authorization, "tok"));
}
