pub mod twitch_irc;
