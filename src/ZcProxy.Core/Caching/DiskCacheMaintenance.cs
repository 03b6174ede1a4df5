using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace ZcProxy.Core.Caching;

/// <summary>nginx's cache loader and manager: indexes the directory in the background at start, then evicts periodically.</summary>
internal sealed partial class DiskCacheMaintenance(DiskCache cache, ILogger<DiskCacheMaintenance> log) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await Task.Yield();
        try
        {
            await Task.Run(() => cache.LoadFromDisk(stoppingToken), stoppingToken);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Security.SecurityException)
        {
            cache.Loaded = true;
            LogLoadFailed(cache.Root, e.Message);
        }
        catch (OperationCanceledException) { return; }
        while (!stoppingToken.IsCancellationRequested)
        {
            var interval = cache.Options.Inactive / 4;
            if (interval < TimeSpan.FromMilliseconds(100)) interval = TimeSpan.FromMilliseconds(100);
            if (interval > TimeSpan.FromSeconds(30)) interval = TimeSpan.FromSeconds(30);
            try { await Task.Delay(interval, cache.Time, stoppingToken); }
            catch (OperationCanceledException) { return; }
            cache.Evict();
        }
    }

    [LoggerMessage(EventId = 4020, Level = LogLevel.Error, Message = "cache directory {Root} could not be scanned: {Error}")]
    private partial void LogLoadFailed(string root, string error);
}
