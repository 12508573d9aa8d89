ALTER TABLE `applications` ADD `description` text;--> statement-breakpoint
ALTER TABLE `applications` ADD `home_url` text;--> statement-breakpoint
ALTER TABLE `applications` ADD `initiate_login_uri` text;