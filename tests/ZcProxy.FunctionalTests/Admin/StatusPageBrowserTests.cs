using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Playwright;

namespace ZcProxy.Tests.Admin;

/// <summary>
/// The status page (GET {Admin}/) in a real headless Chromium (Debian's chromium package, driven by Playwright with the
/// system browser's executable, no browser download): it renders the test config's destinations, its charts move under
/// load, and its Drain button takes effect through the admin guard (same-origin request, bearer token typed into the page).
/// One browser session for all of it: starting Chromium is the expensive part.
/// </summary>
public class StatusPageBrowserTests
{
    private const string Token = "page-test-token";
    private static readonly HttpClient Client = new();

    [ChromiumFact] // skipped, saying how to install it, without Chromium
    public async Task StatusPage_ShowsDestinations_ChartsMoveUnderLoad_DrainButtonWorks()
    {
        await using var a = await TestOrigin.StartAsync("A", app => app.MapGet("/p", (HttpContext c) =>
        {
            c.Response.Headers.CacheControl = "max-age=600";
            return new string('x', 4096);
        }));
        await using var b = await TestOrigin.StartAsync("B");
        using var dir = new ConfigDirectory();
        dir.WriteAtomically(dir.MainFile, $$"""
            {
              "Listen": [ { "Url": "http://127.0.0.1:0" } ],
              "Admin": { "Url": "http://127.0.0.1:0", "Token": "{{Token}}" },
              "Cache": { "Path": "cache" },
              "AccessLog": { "Path": "off" },
              "ReverseProxy": {
                "Routes": { "r": { "ClusterId": "web", "Match": { "Path": "/{**rest}" }, "Metadata": { "Cache": "on" } } },
                "Clusters": { {{ConfigDirectory.Cluster("web", ("a1", a.Url), ("b1", b.Url))}} }
              }
            }
            """);
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);

        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = ChromiumFactAttribute.ExecutablePath,
            Headless = true,
            Args = ["--no-sandbox"], // CI runs as root, where Chromium's sandbox refuses to start
        });
        var page = await browser.NewPageAsync(new BrowserNewPageOptions { ViewportSize = new ViewportSize { Width = 1280, Height = 820 } });
        page.SetDefaultTimeout((float)Poll.DefaultTimeout.TotalMilliseconds);
        await page.GotoAsync(proxy.AdminUrl + "/");

        // The config's destinations, with their addresses.
        var rowA = page.Locator("table[data-cluster='web'] tr[data-destination='a1']");
        var rowB = page.Locator("table[data-cluster='web'] tr[data-destination='b1']");
        await Assertions.Expect(rowA).ToContainTextAsync(a.Url);
        await Assertions.Expect(rowB).ToContainTextAsync(b.Url);
        await Assertions.Expect(rowA.Locator("td").Nth(3)).ToHaveTextAsync("enabled");

        // Under load both charts draw something else than before.
        var bytesBefore = await page.EvalOnSelectorAsync<string>("#bytes-chart", "c => c.toDataURL()");
        var cacheBefore = await page.EvalOnSelectorAsync<string>("#cache-chart", "c => c.toDataURL()");
        using var load = new CancellationTokenSource();
        var requests = Task.Run(async () =>
        {
            // A cached page and an uncached one: both charts get something to show.
            for (int i = 0; !load.IsCancellationRequested; i++)
                (await Client.GetAsync(proxy.Url + (i % 2 == 0 ? "/p" : $"/?n={i}"), CancellationToken.None)).EnsureSuccessStatusCode();
        });
        await Poll.UntilAsync(async () => double.TryParse(await page.GetAttributeAsync("#bytes-chart", "data-latest"), out var v) && v > 0,
            "the bytes chart's latest sample above zero");
        await Poll.UntilAsync(async () => double.TryParse(await page.GetAttributeAsync("#cache-chart", "data-latest"), out var v) && v > 0,
            "the cache chart's latest hit ratio above zero");
        Assert.NotEqual(bytesBefore, await page.EvalOnSelectorAsync<string>("#bytes-chart", "c => c.toDataURL()"));
        Assert.NotEqual(cacheBefore, await page.EvalOnSelectorAsync<string>("#cache-chart", "c => c.toDataURL()"));
        await Assertions.Expect(page.Locator("#bytes-legend")).ToContainTextAsync("/s");

        // Drain from the page: refused without the token (the page says why), done with it.
        var drain = rowA.Locator("button[data-action='drain']");
        await drain.ClickAsync();
        await Assertions.Expect(page.Locator("#error")).ToContainTextAsync("token");
        Assert.Equal("enabled", await StateAsync(proxy, "a1"));
        await page.FillAsync("#token", Token);
        await drain.ClickAsync();
        await Assertions.Expect(rowA.Locator("td").Nth(3)).ToHaveTextAsync("draining");
        Assert.Equal("draining", await StateAsync(proxy, "a1"));
        Assert.Equal("enabled", await StateAsync(proxy, "b1"));
        await Assertions.Expect(page.Locator("#error")).ToBeHiddenAsync();

        // The README's picture (docs/status-page.png, ZCPROXY_STATUS_SCREENSHOT names where to put it), a few seconds into the load.
        await Poll.UntilAsync(async () => int.TryParse(await page.GetAttributeAsync("#bytes-chart", "data-samples"), out var n) && n >= 5,
            "five seconds of samples");
        var shot = await page.ScreenshotAsync(new PageScreenshotOptions { FullPage = true });
        await load.CancelAsync();
        await requests;
        await File.WriteAllBytesAsync(Path.Combine(AppContext.BaseDirectory, "status-page.png"), shot);
        if (Environment.GetEnvironmentVariable("ZCPROXY_STATUS_SCREENSHOT") is { Length: > 0 } target) await File.WriteAllBytesAsync(target, shot);
    }

    private static async Task<string?> StateAsync(InProcessProxy proxy, string destination)
    {
        using var status = JsonDocument.Parse(await Client.GetStringAsync(proxy.AdminUrl + "/status"));
        return status.RootElement.GetProperty("clusters").EnumerateArray().Single(c => c.GetProperty("id").GetString() == "web")
            .GetProperty("destinations").EnumerateArray().Single(d => d.GetProperty("id").GetString() == destination)
            .GetProperty("pool").GetProperty("state").GetString();
    }
}
