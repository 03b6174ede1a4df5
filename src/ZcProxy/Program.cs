using ZcProxy.Cli;
using ZcProxy.Hosting;

var commandLine = CommandLine.Parse(args, out var usageError);
if (commandLine is null)
{
    Console.Error.WriteLine(usageError);
    return 2;
}

switch (commandLine.Command)
{
    case "help":
        Console.WriteLine(CommandLine.Usage);
        return 0;
    case "version":
        Console.WriteLine($"zcproxy {CommandLine.Version}");
        return 0;
    case "check":
        return await CheckCommand.RunAsync(commandLine.ConfigFile);
}

var (config, errors) = await CheckCommand.LoadAndValidateAsync(commandLine.ConfigFile);
if (config is null)
{
    foreach (var error in errors) Console.Error.WriteLine(error);
    Console.Error.WriteLine("zcproxy: not started: the configuration is invalid");
    return 1;
}

var app = await ProxyHost.BuildAsync(commandLine.ConfigFile, config);
await app.RunAsync();
return 0;
